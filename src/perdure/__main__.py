from perdure.cli.entry import main

main()
