import { test } from 'uvu'
import { contract } from './suite'

contract('nats')
test.run()
