"""The persona language, shared by every side of mien: reading documents
(:mod:`mien.spec.document`), their models and value types (:mod:`mien.spec.models`,
:mod:`mien.spec.values`), composing the ``extends`` chain, overlays and customizations
(:mod:`mien.spec.compose`; its layers and result in :mod:`mien.spec.layers`, key paths in
:mod:`mien.spec.keys`), the canonical form (:mod:`mien.spec.canonical`) and the
problems every reader reports (:mod:`mien.spec.errors`).

Import from the submodule that defines a name; this package itself exports nothing, so
importing it costs nothing until a persona is actually read.
"""
