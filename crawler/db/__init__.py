"""The archive database: typed models, the session factory and queries."""
