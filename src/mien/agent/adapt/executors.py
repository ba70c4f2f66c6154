"""The actions a rule may take, each as an executor with ``apply`` and (where it can be
undone) ``revert``, run by the agent (root) on the machine ``--root`` names.

The registry :data:`EXECUTORS` maps the action names of the persona language to them.
Executors that go through the engine (``set_setting``, ``switch_persona``) live in
:mod:`mien.agent.adapt.overlays`, the firewall in :mod:`mien.agent.adapt.firewall`, cgroup
limits in :mod:`mien.agent.adapt.cgroups`; the small ones are here. ``respond`` is not an
executor: the rules expand it into the actions of ``automated_responses.NAME``.

An executor raises :class:`ActionFailed` having left the machine as it was; the loop then
retries with backoff unless ``retry`` is false (a refusal, or arguments that can never
work). Used by :mod:`mien.agent.adapt.loop`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mien.agent.adapt.action_base import (
    OUTPUT_CAP,
    RUN_TIMEOUT,
    ActionFailed,
    Ctx,
    Done,
    Executor,
    on_machine,
    param,
    run_program,
)


class Notify:
    """An event and a line in the agent's log (the server's report carries the event)."""

    reversible = False

    def apply(self, ctx: Ctx, params: Mapping[str, Any]) -> Done:
        message = str(param(params, "message", default=f"rule {ctx.rule} fired"))
        ctx.log(f"notify ({ctx.rule}): {message}")
        return Done("done", message)

    def revert(self, ctx: Ctx, undo: Mapping[str, Any]) -> None:
        return None


class Scale:
    """A request to resize this machine: queued for the server, whose providers act on it.
    Without a server nobody acts, and it is shown as exactly that."""

    reversible = False

    def apply(self, ctx: Ctx, params: Mapping[str, Any]) -> Done:
        wanted = {k: v for k, v in params.items() if k not in ("action", "respond")}
        if ctx.has_server:
            return Done("requested", f"scale {wanted}: queued for the server")
        return Done("requested", f"scale {wanted}: requested, nobody to act (no server)")

    def revert(self, ctx: Ctx, undo: Mapping[str, Any]) -> None:
        return None


class Run:
    """A command through the command router: refused exactly as it would be for a person."""

    reversible = False

    def apply(self, ctx: Ctx, params: Mapping[str, Any]) -> Done:
        from mien.agent import router, router_exec

        raw = param(params, "command")
        argv = shlex.split(raw) if isinstance(raw, str) else [str(a) for a in raw]
        argv += [str(a) for a in params.get("args") or ()]
        timeout = RUN_TIMEOUT  # the loop waits for it: a command must not hold it for long
        try:
            done = router_exec.run(
                ctx.root, argv, capture=True, timeout=timeout, actor=f"rule:{ctx.rule}"
            )
        except router.RouteError as exc:
            raise ActionFailed(f"{argv[0] if argv else '(empty)'}: {exc}", retry=False) from None
        if isinstance(done.decision, router.Refuse):
            raise ActionFailed(f"refused: {done.message}", retry=False)
        out = (done.stdout + done.stderr)[:OUTPUT_CAP].decode(errors="replace")
        if done.status != 0:
            raise ActionFailed(f"{' '.join(argv)} exited {done.status}: {done.message or out}")
        return Done("done", f"{' '.join(argv)} exited 0", {"output": out})

    def revert(self, ctx: Ctx, undo: Mapping[str, Any]) -> None:
        return None


def _service_command(root: Path) -> list[str] | None:
    """How this machine restarts a service: systemctl where systemd runs, else service."""
    systemd = (root / "run/systemd/system").is_dir()
    for base in ("usr/bin", "bin", "usr/sbin", "sbin"):
        if systemd and (root / base / "systemctl").exists():
            return [f"/{base}/systemctl", "restart"]
    for base in ("usr/sbin", "sbin", "usr/bin", "bin"):
        if (root / base / "service").exists():
            return [f"/{base}/service"]
    return None


class RestartService:
    """``systemctl restart NAME`` where systemd runs, else ``service NAME restart``."""

    reversible = False

    def apply(self, ctx: Ctx, params: Mapping[str, Any]) -> Done:
        name = str(param(params, "service"))
        if not name or name.startswith("-") or "/" in name:
            raise ActionFailed(f"service {name!r}: not a service name", retry=False)
        how = _service_command(ctx.root)
        if how is None:
            raise ActionFailed(
                f"cannot restart {name}: {ctx.root} has neither systemctl (with systemd "
                "running) nor service",
                retry=False,
            )
        argv = [*how, name] if how[-1] == "restart" else [*how, name, "restart"]
        status, output = run_program(on_machine(ctx.root, argv))
        if status != 0:
            raise ActionFailed(f"{' '.join(argv)} exited {status}: {output.strip()}")
        return Done("done", f"{' '.join(argv)}: restarted", {"output": output})

    def revert(self, ctx: Ctx, undo: Mapping[str, Any]) -> None:
        return None


def executors() -> dict[str, Executor]:
    """Every built-in action by its name in the persona language (``respond`` excepted)."""
    from mien.agent.adapt.cgroups import Limit
    from mien.agent.adapt.firewall import FirewallBlock
    from mien.agent.adapt.overlays import SetSetting, SwitchPersona

    return {
        "set_setting": SetSetting(),
        "switch_persona": SwitchPersona(),
        "run": Run(),
        "restart_service": RestartService(),
        "firewall_block": FirewallBlock(),
        "limit": Limit(),
        "scale": Scale(),
        "notify": Notify(),
    }
