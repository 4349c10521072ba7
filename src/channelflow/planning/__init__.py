"""Planning: deriving from the database every email that has fallen due, and queueing it once."""
