"""The one Logger, Tracer and Metrics of each function (service name from POWERTOOLS_SERVICE_NAME)."""

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()

# Most reads publish no metric; Powertools would log this warning on every such invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
