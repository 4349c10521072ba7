from channelflow.cli import main

main()
