"""The stages of the request pipeline (``fastgate/gateway/pipeline.py``), one concern each."""
