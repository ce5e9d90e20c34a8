"""Replica servers: local HTTP servers that answer like each Chat Completions dialect."""
