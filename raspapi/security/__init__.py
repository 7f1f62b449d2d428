"""Who may do what: key checking, the admin key in .env, scoped keys, the audit log."""
