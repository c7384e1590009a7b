from medsyn.cli import main

main()
