"""Training pipeline: from a lead table and a dataset spec to a calibrated, explained model bundle."""
