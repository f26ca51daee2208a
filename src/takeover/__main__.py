from takeover.cli.app import main

main()
