"""chamtvm: ChamNet-style platform-aware model adaptation through Apache TVM.

Importing this package is cheap: TVM, torch and XGBoost load when first needed.
"""

__version__ = "0.1.0"
