"""The DR plan as code: model, loading with located errors, validation, graph, init."""
