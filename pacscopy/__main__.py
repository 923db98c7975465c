from pacscopy.cli import main

main()
