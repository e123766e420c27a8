"""scikit-learn lives only here: lrnstak.ml is the one package that imports sklearn, numpy, scipy and joblib."""
