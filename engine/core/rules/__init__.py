"""Rules: what a rule is at request time (model), reading and checking rule files (load), and
which rules a configuration enables (select)."""
