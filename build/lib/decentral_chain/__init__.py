"""decentral_chain: settle AI-inference jobs on Solana and verify the receipts."""
