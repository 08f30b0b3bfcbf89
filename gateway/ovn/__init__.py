"""Everything that knows OVSDB: the connection, transactions, ownership keys and indexes."""
