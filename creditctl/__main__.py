from creditctl.cli.app import main

main()
