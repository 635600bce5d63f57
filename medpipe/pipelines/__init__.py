"""Pipelines: YAML files in ``pipelines/`` chaining the stages (``medpipe run pipelines/NAME.yaml``)."""
