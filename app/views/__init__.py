"""One module per view. A view takes data (a trace, a config, a table, metrics) and draws it;
it never touches a model."""
