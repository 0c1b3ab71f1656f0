from svdops.cli.main import main

main()
