"""Assets per pipeline stage: sources -> regions -> training sets -> models -> evaluation."""
