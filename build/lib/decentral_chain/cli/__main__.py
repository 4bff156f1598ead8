from decentral_chain.cli import main

main()
