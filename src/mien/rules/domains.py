"""Metric names and the learning domain each belongs to, for the agent's collectors.

The table itself is part of the language (the spec rejects a rule reading an unknown
metric or one of a domain the persona does not grant), so it is defined in
:mod:`mien.spec.metrics`; this module is where the runtime imports it from.

    metrics:         cpu_percent, load_1m, load_5m, memory_percent, swap_percent,
                     disk_percent:<mount>, net_rx_bps, net_tx_bps, latency_ms:<probe>
    system_logs:     log_errors_per_min:<name>
    network_traffic: iface_rx_bps:<iface>, iface_tx_bps:<iface>, connections:<port>,
                     connections_total
    api_calls:       api_rps, api_error_rate, api_latency_p50_ms, api_latency_p95_ms,
                     api_latency_p99_ms
    processes:       process_count, process_up:<name>, top_cpu_percent
    file_access:     file_changes_per_min:<name>
    auth_events:     auth_failures_per_min, auth_successes_per_min,
                     firewall_blocks_per_min, scan_findings

A ``<…>`` part is free text after the colon; conditions read such names as
``metrics["disk_percent:/"]``.
"""

from __future__ import annotations

from mien.spec.metrics import DOMAINS, domain_of, known_names, metric_refs

__all__ = ["DOMAINS", "domain_of", "known_names", "metric_refs"]
