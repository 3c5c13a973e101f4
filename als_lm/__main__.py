from als_lm.cli import main

main()
