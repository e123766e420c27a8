"""lrnstak: train scikit-learn models and serve predictions over REST on AWS Lambda."""

__version__ = "0.1.0"
