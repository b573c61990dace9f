"""Templates: the Jinja sandbox and text templates (jinja), and YAML fragment templates whose
string values hold Jinja expressions (fragments)."""
