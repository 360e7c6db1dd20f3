import NameMatching
import Testing

@Suite struct NameMatchingTests {
    @Test func pinyinKeysUseCommonAndSurnameReadings() {
        #expect(ChineseName("张三").pinyinKey == "zhangsan")
        #expect(ChineseName(" 王 小明 ").text == "王小明")
        #expect(ChineseName("单雄信").pinyinKey == "shanxiongxin", "单 as a surname reads shan")
        #expect(ChineseName("曾国藩").pinyinKey == "zengguofan")
        #expect(ChineseName("Zhang San").pinyinKey == "zhangsan")
        #expect(ChineseName("吕布").pinyinKey == "lvbu")
    }

    @Test func surnamesIncludingCompoundOnes() {
        #expect(ChineseName("欧阳娜娜").surname == "欧阳")
        #expect(ChineseName("司马光").surname == "司马")
        #expect(ChineseName("欧阳").surname == "欧", "a two-character name is surname + given name")
        #expect(ChineseName("李四").surname == "李")
        #expect(ChineseName("Li Si").surname == nil)
    }

    @Test(arguments: [
        ("张三", "张三", NameAgreement.exact),
        ("张三", "章三", .homophone),
        ("王丽", "王莉", .homophone),
        ("张三", "Zhang San", .homophone),
        ("张三", "ZHANGSAN", .homophone),
        ("张三", "San Zhang", .homophone),
        ("单雄信", "Shan Xiongxin", .homophone),
        ("陈建国", "陈建军", .surnameOnly),
        ("陈建国", "程建国", .similar),
        ("刘德华", "牛德华", .similar),
        ("Zhang San", "Zhagn San", .similar),
        ("张伟", "李娜", .different),
        ("Li Si", "li si", .exact),
        ("Wang Fang", "Fang Wang", .homophone),
        ("", "张三", .different),
    ])
    func nameAgreement(a: String, b: String, expected: NameAgreement) {
        #expect(NameComparison.compare(ChineseName(a), ChineseName(b)) == expected, "\(a) ~ \(b)")
        #expect(NameComparison.compare(ChineseName(b), ChineseName(a)) == expected, "symmetric: \(b) ~ \(a)")
    }

    @Test func twinsWithDifferentGivenNamesAreNotHomophones() {
        #expect(NameComparison.compare(ChineseName("李明轩"), ChineseName("李明宇")) < .homophone)
        #expect(NameComparison.compare(ChineseName("王子涵"), ChineseName("王子轩")) < .homophone)
    }

    @Test func everyCommonCharacterHasAReading() {
        for character
            in "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会家可下而过天去能对小多然于心学么之都好看起发当没成只如事把还用第样道想作种开美总从无情己面最女但现前些所同日手又行意动方期它头经长儿回位分爱老因很给名法间知世什两次使身者被高已亲其进此话常与活正感见明问力理点文几定本公特做外孩相西果走将月十实向声车全信重三机工物气每并别真打太新比才便夫再书部水像眼等体却加电主界门利海受听表德少克代员许先口由死安写性马光白或住难望教命花结乐色更拉东神记处让母父应直字场平报友关放至张认接告入笑内英军候民岁往何度山觉路带万男边风解叫任金快原吃妈变通师立象数四失满战远格士音轻目条呢病始达深完今提求清王化空业思切怎非找片罗钱吗语元喜曾离飞科言干流欢约各即指合反题必该论交终林请医晚制球决传画保读运及则房早院量苦火布品近坐产答星精视五连司巴奇管类未朋且婚台夜青北队久乎越观落尽形影红爸百令周吧识步希亚术留市半热送兴造谈容极随演收首根讲整式取照办强石古华拿计您装似足双妻尼转诉米称丽客南领节衣站黑刻统断福城故历惊脸选包紧争另建维绝树系伤示愿持千史谁准联妇纪基买志静阿诗独复痛消社算义竟确酒需单治卡幸兰念举仅钟怕共毛句息功官待究跟穿室易游程号居考突皮哪费倒价图具刚脑永歌响商礼细专黄块脚味灵改据般破引食仍存众注笔甚某沉血备习校默务土微娘须试怀料调广苏显赛查密议底列富梦错座参八除跑亮假印设线温虽掉京初养香停际致阳纸李纳验助激够严证帝饭忘趣支春集丈木研班普导顿睡展跳获艺六波察群皇段急庭创区奥器谢弟店否害草排背止组州朝封睛板角况曲馆育忙质河续哥呼若推境遇雨标姐充围案伦护冷警贝著雪索剧啊船险烟依斗值帮汉慢佛肯闻唱沙局伯族低玩资屋击速顾泪洲团圣旁堂兵七露园牛哭旅街劳型烈姑陈莫鱼异抱宝权鲁简态级票怪寻杀律胜份汽右洋范床舞秘午登楼贵吸责例追较职属渐左录丝牙党继托赶章智冲叶胡吉卖坚喝肉遗救修松临藏担戏善卫药悲敢靠伊村戴词森耳差短祖云规窗散迷油旧适乡架恩投弹铁博雷府压超负勒杂醒洗采毫嘴毕九冰既状乱景席珍童顶派素脱农疑练野按犯拍征坏骨余承置彩灯巨琴免环姆暗换技翻束增忍餐洛塞缺忆判欧层付阵玛批岛项狗休懂武革良恶恋委拥娜妙探呀营退摇弄桌熟诺宣银势奖宫忽套康供优课鸟喊降夏困刘罪亡鞋健模败伴守挥鲜财孤枪禁恐伙杰迹妹遍盖副坦牌江顺秋萨菜划授归浪听凡预奶雄升编典袋莱含盛济蒙棋端腿招释介烧误黔筑遵义毕节铜仁凯里都匀兴义苗侗布依彝仡佬"
        {
            #expect(Pinyin.isHan(character), "\(character)")
        }
    }

    @Test func dates() {
        #expect(DateAgreement.compare("1990-03-07", "1990-03-07") == .exact)
        #expect(DateAgreement.compare("1990-03-07", "1990-07-03") == .dayMonthSwapped)
        #expect(DateAgreement.compare("1990-03-07", "1990-03-08") == .oneDigitOff)
        #expect(DateAgreement.compare("1990-03-07", "1985-11-21") == .different)
        #expect(DateAgreement.compare("1990-03-07", "") == .different)
    }

    @Test func jaroWinklerReferenceValues() {
        // Winkler's published examples.
        #expect(abs(JaroWinkler.similarity("MARTHA", "MARHTA") - 0.961) < 0.001)
        #expect(abs(JaroWinkler.similarity("DWAYNE", "DUANE") - 0.84) < 0.001)
        #expect(abs(JaroWinkler.similarity("DIXON", "DICKSONX") - 0.813) < 0.001)
        #expect(JaroWinkler.similarity("", "") == 1)
        #expect(JaroWinkler.similarity("abc", "") == 0)
    }
}

@Suite struct MatcherTests {
    let matcher = Matcher()
    static let resident = PersonRecord(
        name: "张三", sex: 1, birthDate: "1990-03-07", idNumber: "52010219900307123X", idNumberValid: true, phone: "13812345678",
        division: "520102", address: "中山路 12 号")

    @Test func theSamePersonWithHISNoiseIsLinked() {
        let noisy = PersonRecord(name: "ZHANG SAN", sex: 1, birthDate: "1990-07-03", phone: "138-1234-5678", division: "520102")
        let score = matcher.score(noisy, Self.resident)
        #expect(score.decision == .link, "\(score)")
        #expect(score.evidence.contains("name:homophone") && score.evidence.contains("birth:swapped"))
        let typo = PersonRecord(name: "章三", sex: 1, birthDate: "1990-03-07", idNumber: "52010219900307133X", idNumberValid: false)
        #expect(matcher.score(typo, Self.resident).decision == .link)
    }

    @Test func twinsAreNeverLinkedAutomatically() {
        // Same surname, birth date, phone, address and county; another given name.
        let twinWithoutID = PersonRecord(
            name: "张四", sex: 1, birthDate: "1990-03-07", phone: "13812345678", division: "520102", address: "中山路12号")
        #expect(matcher.score(twinWithoutID, Self.resident).decision != .link)
        var twinWithID = twinWithoutID
        twinWithID.idNumber = "520102199003071251"
        twinWithID.idNumberValid = true
        #expect(matcher.score(twinWithID, Self.resident).decision == .distinct, "a valid, disagreeing ID means two people")
    }

    @Test func disagreeingValidIDsOverrideEverythingElse() {
        var namesake = Self.resident
        namesake.idNumber = "520102199003071251"
        #expect(matcher.score(namesake, Self.resident).decision == .distinct)
    }

    @Test func blockingKeysMeetAcrossScriptsAndErrors() {
        let han = Matcher.blockingKeys(Self.resident)
        let pinyinSwapped = Matcher.blockingKeys(PersonRecord(name: "San Zhang", birthDate: "1990-07-03"))
        let homophone = Matcher.blockingKeys(PersonRecord(name: "章三", birthDate: "1990-03-07"))
        let newPhone = Matcher.blockingKeys(PersonRecord(name: "李四", birthDate: "1985-01-01", phone: "13812345678"))
        #expect(!han.isDisjoint(with: pinyinSwapped))
        #expect(!han.isDisjoint(with: homophone))
        #expect(!han.isDisjoint(with: newPhone))
        #expect(han.isDisjoint(with: Matcher.blockingKeys(PersonRecord(name: "王五", birthDate: "1990-03-07"))))
    }
}
