"""What leaky needs of the machine it runs on, below every other layer.

Result files written whole or not at all and one rule for output paths (:mod:`.atomic`),
sizes in bytes for people (:mod:`.byte_sizes`), the CPU, cores and memory of this machine
(:mod:`.machine`) and leaky's own version (:mod:`.version`). Nothing here imports another
part of leaky.
"""
