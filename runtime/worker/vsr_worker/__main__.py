from vsr_worker.cli import main

raise SystemExit(main())
