"""Public JSON bodies (camelCase), one module per upstream domain, each with its proto → body mapping."""
