"""pymunk scenes with ground-truth interaction graphs and interventions."""
