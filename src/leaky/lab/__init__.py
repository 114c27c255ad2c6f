"""The lab: experiments planned as one sweep, run resumably, stored, summarised.

:mod:`.config` (typed configs, TOML and ``--set`` overrides), :mod:`.experiments` (one
module per claim), :mod:`.models` and :mod:`.benchmark_models` (the networks they train),
:mod:`.plan` (a command's :class:`~leaky.lab.plan.Sweep`, built once), :mod:`.runner`
with its two backends (:mod:`.worker_pool`, :mod:`.ray_backend`), :mod:`.store` (SQLite,
one transaction per run), :mod:`.resources` (will a sweep fit), :mod:`.findings` (the
front door: run, summarise, write findings) and :mod:`.tensorboard_runs`. The lab never
imports the report, the playground, the benchmarks or the command line.
"""
