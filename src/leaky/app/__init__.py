"""The top of the layers: the ``leaky`` command line and the demo's orchestration.

:mod:`.cli` is the command group and what every command shares (the error policy, exit
codes, flag names); the commands themselves are thin wrappers in :mod:`.lab_commands`
(run, demo, report, list, curves), :mod:`.model_commands` (diagnose, export) and
:mod:`.tool_commands` (bench, playground, data). :mod:`.demo` runs every quick preset and
then the report, so that neither the lab nor the report imports the other. Nothing below
imports this package.
"""
