"""Reports rendered from what actions did (jinja2 templates, Markdown and JSON)."""
