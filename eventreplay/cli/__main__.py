from eventreplay.cli.main import main

main()
