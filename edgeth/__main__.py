from edgeth.cli import main

main()
