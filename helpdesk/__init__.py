"""helpdesk: a support console for e-commerce brands with a marketing suppression bridge."""

__version__ = "0.1.0"
