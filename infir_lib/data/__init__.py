"""Chapter 1: the pre-training data pipeline (InfiR §2.1). Also the toy tasks every chapter shares."""
