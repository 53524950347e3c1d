"""Recovery: the LightningModule, the measurement grid, the results store, hyperparameter tuning, the job."""
