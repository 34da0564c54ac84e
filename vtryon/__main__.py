from vtryon.cli import main

main()
