"""Video path: GPU probe, encoder selection and the low-latency H.264 encoder."""
