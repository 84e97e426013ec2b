"""The fake Clover's modules (run it with test/fake/fake_clover.py).

clock    fake clock and service hours
config   defaults, validation, merging
data     deterministic orders and payments per hour bucket
exports  export life cycle; file generation and cache
faults   fault rules and body transformations
v1       the /v1 lists and their pagination
server   state (class Fake: one method per rule) and the two HTTP hosts
"""
