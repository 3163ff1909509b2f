from gxft.cli import main

main()
