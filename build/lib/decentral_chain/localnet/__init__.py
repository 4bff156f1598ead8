"""The local chain: a real SVM (LiteSVM from solders) with the escrow deployed."""
