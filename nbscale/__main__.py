from nbscale.cli import main

main()
