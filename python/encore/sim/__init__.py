"""A closed learning loop against a real `encore serve`: shopper simulator, train, evaluate, push."""
