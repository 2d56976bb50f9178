"""A partition: its records, the pure state machine that applies them, the store it applies
them to, and the leader that turns the resulting effects into I/O."""
