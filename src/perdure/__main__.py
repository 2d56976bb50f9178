from perdure.cli.main import main

main()
