"""Dataset validation: keyclass's schema rules and the gate that stops a bad dataset
before training (ExampleValidator alone only reports anomalies; it blocks nothing)."""
