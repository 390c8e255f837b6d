"""The product catalog: products, categories and catalog import."""
