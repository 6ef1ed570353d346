"""The window's flows: one small controller per thing a user does (see docs/architecture.md)."""
