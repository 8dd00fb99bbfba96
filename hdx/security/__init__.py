"""Who may watch and drive the desktop: signed join tokens, roles, the input floor, TLS and the
audit trail. Each module has one job; the server wires them together (hdx.server)."""
