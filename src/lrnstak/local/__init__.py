"""The embedded stack: moto as AWS, the resources of template.yaml, and the four apps on one port."""
